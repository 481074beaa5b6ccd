"""Greedy and beam-search decoding for the Flax M2M100, as transformers' `generate` does it.

By default each step runs the decoder on one new position against a key/value
cache of fixed shape: per decoder layer, self-attention keys and values of
every earlier position (`f32[N, max_length, ·]`, written in place), and
cross-attention keys and values computed once from the encoder states. Beam
search reorders the cache rows with the beams. `use_cache=False` reruns the
decoder over the whole buffer every step instead, which costs max_length
positions per step and serves as the reference for the cached path. Shapes are
fixed either way, so the whole loop is jitted.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from sosjax.models.m2m100 import M2M100

# transformers uses -1e9 as "impossible" in its beam bookkeeping.
_IMPOSSIBLE = -1.0e9


def _step_positions(tokens: jax.Array, pad_token_id: int) -> jax.Array:
    """Positions of a generation buffer `int32[N, L]` as transformers' cached
    decoding numbers them: step t is at pad_token_id + 1 + t, padding at pad_token_id."""
    steps = jnp.arange(tokens.shape[1], dtype=jnp.int32)[None, :] + pad_token_id + 1
    return jnp.where(tokens == pad_token_id, pad_token_id, steps)


def _next_logits(model, variables, tokens, step, encoder_states, attention_mask, mask):
    """Compute the logits `f32[N, vocab]` for the token after position `step - 1` of
    `tokens`, rerunning the decoder over the whole buffer."""
    logits = model.decode(
        variables,
        tokens,
        encoder_states,
        attention_mask,
        mask,
        decoder_positions=_step_positions(tokens, model.hparams.pad_token_id),
    )
    return jax.lax.dynamic_index_in_dim(logits, step - 1, axis=1, keepdims=False).astype(jnp.float32)


def _decoder(model, variables, encoder_states, attention_mask, mask, max_length: int, use_cache: bool):
    """Return `(cache, logits_fn)` for decoding from `encoder_states: f32[N, S, d]`.

    `logits_fn(tokens int32[N, max_length], step, cache) -> (f32[N, vocab], cache)`
    gives the logits for the token at `step` from the tokens before it. With
    `use_cache`, `cache` is the self-attention cache (see `M2M100.init_cache`)
    and only the token at `step - 1` is run. Without it, `cache` is an empty tuple.
    """
    pad = model.hparams.pad_token_id
    if not use_cache:
        def rerun(tokens, step, cache):
            return _next_logits(model, variables, tokens, step, encoder_states, attention_mask, mask), cache

        return (), rerun

    cross_key_values = model.cross_key_values(variables, encoder_states)

    def one_position(tokens, step, cache):
        token = jax.lax.dynamic_index_in_dim(tokens, step - 1, axis=1, keepdims=False)
        positions = jnp.where(token == pad, pad, pad + step)  # as `_step_positions` numbers position step - 1
        logits, cache = model.decode_step(variables, token, positions, step - 1, cache, cross_key_values,
                                          attention_mask, mask)
        return logits.astype(jnp.float32), cache

    return model.init_cache(encoder_states.shape[0], max_length, encoder_states.dtype), one_position


def _force_token(scores: jax.Array, step, forced_bos_token_id: int | None) -> jax.Array:
    """transformers' ForcedBOSTokenLogitsProcessor: at step 1 every token but the
    forced one gets -inf and the forced one gets 0."""
    if forced_bos_token_id is None:
        return scores
    forced = jnp.full_like(scores, -jnp.inf).at[:, forced_bos_token_id].set(0.0)
    return jnp.where(step == 1, forced, scores)


@functools.partial(jax.jit, static_argnames=("model", "max_length", "forced_bos_token_id", "use_cache"))
def greedy_generate(
    model: M2M100,
    variables,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    mask: jax.Array | None = None,
    *,
    max_length: int,
    forced_bos_token_id: int | None = None,
    use_cache: bool = True,
) -> jax.Array:
    """Greedy decoding, as transformers' `generate(do_sample=False, num_beams=1)`.

    Args:
      input_ids, attention_mask: `int32[B, S]` source tokens.
      mask: `bool[D]` head mask, or None.
      max_length: decoder length including the start token, as transformers counts it.
      forced_bos_token_id: the target-language token forced right after the start
        token (`tokenizer.get_lang_id("en")`), or None.
      use_cache: run one position per step against a key/value cache (False
        reruns the decoder over the whole buffer; the tokens are the same).

    Returns:
      `int32[B, max_length]`: the decoder start token, the generated tokens, and
      padding after the end-of-sequence token. transformers cuts its output at
      the longest sequence instead of padding to `max_length`.
    """
    c = model.hparams
    batch = input_ids.shape[0]
    encoder_states = model.encode(variables, input_ids, attention_mask, mask)
    cache, logits_fn = _decoder(model, variables, encoder_states, attention_mask, mask, max_length, use_cache)
    tokens = jnp.full((batch, max_length), c.pad_token_id, jnp.int32).at[:, 0].set(c.decoder_start_token_id)

    def cond(state):
        step, _, finished, _ = state
        return (step < max_length) & ~jnp.all(finished)

    def body(state):
        step, tokens, finished, cache = state
        scores, cache = logits_fn(tokens, step, cache)
        next_token = jnp.argmax(_force_token(scores, step, forced_bos_token_id), axis=-1).astype(jnp.int32)
        next_token = jnp.where(finished, c.pad_token_id, next_token)
        tokens = jax.lax.dynamic_update_index_in_dim(tokens, next_token, step, axis=1)
        return step + 1, tokens, finished | (next_token == c.eos_token_id), cache

    _, tokens, _, _ = jax.lax.while_loop(cond, body, (jnp.int32(1), tokens, jnp.zeros(batch, bool), cache))
    return tokens


def _gather_beams(values: jax.Array, indices: jax.Array) -> jax.Array:
    """`values[b, indices[b, j]]` for `values: [B, K, ...]`, `indices: int[B, J]`."""
    return jax.vmap(lambda v, i: v[i])(values, indices)


@functools.partial(
    jax.jit,
    static_argnames=("model", "max_length", "num_beams", "forced_bos_token_id", "length_penalty", "use_cache"),
)
def beam_search(
    model: M2M100,
    variables,
    input_ids: jax.Array,
    attention_mask: jax.Array,
    mask: jax.Array | None = None,
    *,
    max_length: int,
    num_beams: int = 4,
    forced_bos_token_id: int | None = None,
    length_penalty: float = 1.0,
    use_cache: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """Beam search with transformers' rules (version 5.25, `early_stopping=False`).

    Each step keeps 2·num_beams candidates. A candidate that ends in EOS or
    reaches `max_length` is finished with the score `sum of log-probabilities /
    generated_length ** length_penalty`. Search stops when, by transformers'
    heuristic, no running beam can beat the worst finished one. With
    `use_cache`, the key/value cache rows follow their beams.

    Returns:
      `(tokens int32[B, max_length], scores f32[B])`: the best finished sequence
      per input, padded, and its length-normalized score.
    """
    c = model.hparams
    batch, source_length = input_ids.shape
    keep = 2 * num_beams

    encoder_states = model.encode(variables, input_ids, attention_mask, mask)
    encoder_states = jnp.repeat(encoder_states, num_beams, axis=0)
    beam_attention_mask = jnp.repeat(attention_mask, num_beams, axis=0)
    cache, logits_fn = _decoder(model, variables, encoder_states, beam_attention_mask, mask, max_length, use_cache)

    start = jnp.full((batch, num_beams, max_length), c.pad_token_id, jnp.int32).at[:, :, 0].set(
        c.decoder_start_token_id
    )
    running_scores = jnp.full((batch, num_beams), _IMPOSSIBLE).at[:, 0].set(0.0)
    state = dict(
        step=jnp.int32(1),
        running=start,
        running_scores=running_scores,
        finished=start,
        finished_scores=jnp.full((batch, num_beams), _IMPOSSIBLE),
        is_finished=jnp.zeros((batch, num_beams), bool),
        improvable=jnp.ones((batch, 1), bool),
        stop=jnp.bool_(False),
        cache=cache,
    )

    def cond(s):
        return (s["step"] < max_length) & ~s["stop"]

    def body(s):
        step = s["step"]
        flat = s["running"].reshape(batch * num_beams, max_length)
        logits, cache = logits_fn(flat, step, s["cache"])
        log_probs = _force_token(jax.nn.log_softmax(logits, axis=-1), step, forced_bos_token_id)
        vocab = log_probs.shape[-1]
        accumulated = log_probs.reshape(batch, num_beams, vocab) + s["running_scores"][:, :, None]

        # Top 2·num_beams continuations over all beams and tokens.
        top_scores, top_indices = jax.lax.top_k(accumulated.reshape(batch, num_beams * vocab), keep)
        top_tokens = (top_indices % vocab).astype(jnp.int32)
        top_sequences = _gather_beams(s["running"], top_indices // vocab)
        top_sequences = jax.lax.dynamic_update_index_in_dim(top_sequences, top_tokens, step, axis=2)
        stops = (top_tokens == c.eos_token_id) | (step + 1 >= max_length)

        # Running beams: the best continuations that did not stop.
        running_candidates = top_scores + stops * _IMPOSSIBLE
        _, next_running = jax.lax.top_k(running_candidates, num_beams)
        running = _gather_beams(top_sequences, next_running)
        running_scores = _gather_beams(running_candidates, next_running)
        cache = _reorder_cache(cache, _gather_beams(top_indices // vocab, next_running))

        # Finished beams: merge the stopped ones among the first num_beams candidates.
        just_finished = stops & (jnp.arange(keep) < num_beams)[None, :]
        normalized = top_scores / (step.astype(jnp.float32) ** length_penalty)
        normalized = normalized + (~s["improvable"]) * _IMPOSSIBLE + (~just_finished) * _IMPOSSIBLE
        merged_sequences = jnp.concatenate([s["finished"], top_sequences], axis=1)
        merged_scores = jnp.concatenate([s["finished_scores"], normalized], axis=1)
        merged_is_finished = jnp.concatenate([s["is_finished"], just_finished], axis=1)
        _, best = jax.lax.top_k(merged_scores, num_beams)
        finished = _gather_beams(merged_sequences, best)
        finished_scores = _gather_beams(merged_scores, best)
        is_finished = _gather_beams(merged_is_finished, best)

        # transformers' heuristic for early_stopping=False: stop once the best
        # running beam, normalized at the current length, cannot beat the worst
        # finished one.
        best_running = running_scores[:, :1] / (step.astype(jnp.float32) ** length_penalty)
        worst_finished = jnp.where(is_finished, jnp.min(finished_scores, axis=1, keepdims=True), _IMPOSSIBLE)
        improvable = s["improvable"] & jnp.any(best_running > worst_finished, axis=-1, keepdims=True)
        stop = ~jnp.any(improvable) | jnp.all(stops)

        return dict(step=step + 1, running=running, running_scores=running_scores, finished=finished,
                    finished_scores=finished_scores, is_finished=is_finished, improvable=improvable, stop=stop,
                    cache=cache)

    state = jax.lax.while_loop(cond, body, state)
    return state["finished"][:, 0], state["finished_scores"][:, 0]


def _reorder_cache(cache, beams: jax.Array):
    """Gather the cache rows `[B·K, ...]` of the beams chosen by `beams: int[B, K]`."""
    batch, num_beams = beams.shape

    def gather(leaf):
        grouped = leaf.reshape((batch, num_beams) + leaf.shape[1:])
        return _gather_beams(grouped, beams).reshape(leaf.shape)

    return jax.tree.map(gather, cache)


def generate(model, variables, input_ids, attention_mask, mask=None, *, max_length: int, num_beams: int = 1,
             forced_bos_token_id: int | None = None, length_penalty: float = 1.0, use_cache: bool = True) -> jax.Array:
    """Translate a batch: greedy when `num_beams == 1`, else beam search.

    Returns `int32[B, max_length]` token ids (start token first, padded).
    """
    if num_beams == 1:
        return greedy_generate(model, variables, input_ids, attention_mask, mask, max_length=max_length,
                               forced_bos_token_id=forced_bos_token_id, use_cache=use_cache)
    tokens, _ = beam_search(model, variables, input_ids, attention_mask, mask, max_length=max_length,
                            num_beams=num_beams, forced_bos_token_id=forced_bos_token_id,
                            length_penalty=length_penalty, use_cache=use_cache)
    return tokens
