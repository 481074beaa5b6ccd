import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory):
    """A finished tiny digits run: `(config, workdir, manifest_path)`. Treat it as read-only."""
    from sosjax.config import load_config
    from sosjax.pipeline import run

    workdir = str(tmp_path_factory.mktemp("finished_run"))
    config = load_config(os.path.join(ROOT, "configs", "digits_resnet18.py") + ":tiny")
    manifest_path = run(config, workdir, progress=False)
    return config, workdir, manifest_path
