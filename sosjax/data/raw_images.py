"""An image data set's own splits, as read from disk before any processing."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class RawImageSplits:
    """A data set's own training and test splits, pixels as stored.

    Images are `uint8[n, H, W, C]` (scikit-learn digits: integers 0..16 in a wider
    integer type); labels are integer class indices `[n]`.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    #: Largest possible pixel value: dividing by it scales pixels to [0, 1].
    max_pixel: float
    #: Description of the data's source (format and path), for logs and error messages.
    origin: str
