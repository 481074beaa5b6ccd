"""Time M2M100 generation with and without the key/value cache, side by side in one process.

For each case (greedy and beam search, on the unpruned model, on the model
under a row mask and on that model compacted to ragged heads), the cached and
the uncached paths decode the same batch. The two paths are checked to give
the same tokens, then timed in turns with compile time excluded. Throughput is
generated tokens (output tokens after the start token, padding excluded) per
second.

Run: `PYTHONPATH=. python benchmarks/generation.py [--max-length 64] [--repeats 5]`
"""

from __future__ import annotations

import argparse
import datetime

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.machine import describe
from benchmarks.population_eval import median_seconds
from sosjax.models.m2m100 import m2m100
from sosjax.models.m2m100_generate import generate


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--d-model", type=int, default=256, help="model width")
    parser.add_argument("--layers", type=int, default=3, help="encoder and decoder layers each")
    parser.add_argument("--heads", type=int, default=8, help="attention heads per layer")
    parser.add_argument("--vocab", type=int, default=8000, help="vocabulary size")
    parser.add_argument("--batch", type=int, default=8, help="source sentences per call")
    parser.add_argument("--source-length", type=int, default=32, help="source tokens per sentence")
    parser.add_argument("--max-length", type=int, default=64, help="decoder length, start token included")
    parser.add_argument("--beams", type=int, default=4, help="beams of the beam-search cases")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per path")
    args = parser.parse_args()

    model = m2m100(vocab_size=args.vocab, d_model=args.d_model, encoder_layers=args.layers,
                   decoder_layers=args.layers, encoder_attention_heads=args.heads, decoder_attention_heads=args.heads,
                   encoder_ffn_dim=4 * args.d_model, decoder_ffn_dim=4 * args.d_model, mask_unit="rows",
                   rows_per_group=4)
    rng = np.random.default_rng(0)
    input_ids = jnp.asarray(rng.integers(3, args.vocab, (args.batch, args.source_length)), jnp.int32)
    attention_mask = jnp.ones_like(input_ids)
    variables = jax.jit(model.init)(jax.random.key(0), {"input_ids": input_ids, "attention_mask": attention_mask,
                                                        "decoder_input_ids": input_ids[:, :4]})
    mask = model.repair(jax.random.key(1), jnp.asarray(rng.random(model.num_dims) < 0.5))
    small, small_variables = model.compact(variables, np.asarray(mask))

    print(f"# {describe()}; {datetime.date.today().isoformat()}")
    print(f"# d_model={args.d_model}, layers={args.layers}+{args.layers}, heads={args.heads}, vocab={args.vocab}, "
          f"batch={args.batch}, source_length={args.source_length}, max_length={args.max_length}, "
          f"median of {args.repeats}")
    print("| case | beams | generated tokens | uncached (s) | cached (s) | uncached tokens/s | cached tokens/s | speed-up |")
    print("|---|---|---|---|---|---|---|---|")

    cases = [("unpruned", model, variables, None), ("row mask, 50%", model, variables, mask),
             ("compacted, ragged heads", small, small_variables, None)]
    for name, case_model, case_variables, case_mask in cases:
        for beams in (1, args.beams):
            fns = {
                use_cache: (lambda m=case_model, v=case_variables, k=case_mask, b=beams, c=use_cache: generate(
                    m, v, input_ids, attention_mask, k, max_length=args.max_length, num_beams=b, use_cache=c))
                for use_cache in (False, True)
            }
            cached_tokens, uncached_tokens = np.asarray(fns[True]()), np.asarray(fns[False]())
            if not np.array_equal(cached_tokens, uncached_tokens):
                raise AssertionError(f"{name}, {beams} beams: cached and uncached tokens differ.")
            generated = int((cached_tokens[:, 1:] != model.hparams.pad_token_id).sum())

            seconds = median_seconds(fns, args.repeats)
            print(f"| {name} | {beams} | {generated} | {seconds[False]:.3f} | {seconds[True]:.3f} | "
                  f"{generated / seconds[False]:.0f} | {generated / seconds[True]:.0f} | "
                  f"{seconds[False] / seconds[True]:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
