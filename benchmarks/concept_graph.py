"""Concept-graph extraction speed and accuracy: `python -m benchmarks.concept_graph --preset=full`.

Plants a conjunctive hierarchy in synthetic presence bits, times `identi.concepts.extract_graph`
on them and scores the learned edges against the planted graph. The planted world, per level
pair: every upper unit has 2-4 random parents below. Presence is drawn top-down, then emerges
bottom-up:

1. Top level: every unit fires independently with probability `rate`.
2. Going down: every unit fires independently with probability `rate`, and is forced on when a
   firing unit above has it as a parent (a whole brings all its parts).
3. Going up: an upper unit is present iff all its parents are present (conjunctive emergence, which
   keeps every unit forced on in step 2), or through a random leak activation with probability
   `leak * rate` (a few % of its activations: partial patterns, as selection's leak makes them).

Parts of this world appear mostly as full sets (they are rarely on without the forcing whole), so a
subset of a parent set is often already sufficient at the default precision target of 0.9 and the
cover stops early on wholes of 3-4 parts: `--precision=0.99` recovers more of them (the trade-off
described in `identi.concepts.graph`).

Times: the first call of `extract_graph` is split into compilation (tracing, lowering and XLA
compile, summed from JAX's compile-time events) and the rest; the steady state is the median of
`--repeats` further calls, each ending with `block_until_ready`. Results go to stdout and --output
(JSON).
"""

from __future__ import annotations

import statistics
import time

import jax
import numpy as np
import scipy.sparse
from absl import flags

from identi import io
from identi.bin import cli
from identi.concepts import extract_graph, levels_to_square
from identi.metrics.graph import edge_auroc, edge_metrics

PRESETS = {
    # (units per level, levels, samples)
    "smoke": (64, 3, 2048),
    "full": (4096, 3, 16384),
}

_PRESET = flags.DEFINE_enum("preset", "full", list(PRESETS), "World size.")
_REPEATS = flags.DEFINE_integer("repeats", 1, "Timed steady-state calls (median reported).")
_RATE = flags.DEFINE_float("rate", 0.02, "Independent firing probability of every unit.")
_LEAK = flags.DEFINE_float("leak", 0.03, "Leak activations per upper unit, as a fraction of rate.")
_NECESSITY = flags.DEFINE_float("necessity", 0.9, "learn_edges' necessity threshold.")
_PRECISION = flags.DEFINE_float("precision", 0.9, "learn_edges' precision target.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the planted graph and the samples.")
_OUTPUT = flags.DEFINE_string("output", "", "Optional JSON output path.")


def planted_world(units: int, levels: int, samples: int, *, rate: float = 0.02,
                  leak: float = 0.03, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
  """Presence bits (bool (samples, units) per level) and the planted blocks (see the docstring)."""
  rng = np.random.default_rng(seed)
  blocks = []
  for _ in range(levels - 1):
    block = np.zeros((units, units), bool)
    for j in range(units):
      block[rng.choice(units, rng.integers(2, 5), replace=False), j] = True
    blocks.append(block)
  drawn = [rng.random((samples, units)) < rate for _ in range(levels)]
  for l in reversed(range(levels - 1)):
    forced = scipy.sparse.csr_matrix(drawn[l + 1], dtype=np.int32) @ scipy.sparse.csr_matrix(
        blocks[l].T, dtype=np.int32)
    drawn[l] |= forced.toarray() > 0
  presences = [drawn[0]]
  for block in blocks:
    counts = scipy.sparse.csr_matrix(presences[-1], dtype=np.int32) @ scipy.sparse.csr_matrix(
        block, dtype=np.int32)
    emerged = counts.toarray() == block.sum(axis=0)
    presences.append(emerged | (rng.random(emerged.shape) < leak * rate))
  return presences, blocks


def run(preset: str, repeats: int = 1, rate: float = 0.02, leak: float = 0.03, seed: int = 0,
        **learn_kwargs) -> dict:
  """Builds the preset's world, times extract_graph(presences, **learn_kwargs) on it and scores the
  result."""
  units, levels, samples = PRESETS[preset]
  t0 = time.perf_counter()
  presences, blocks = planted_world(units, levels, samples, rate=rate, leak=leak, seed=seed)
  data_s = time.perf_counter() - t0
  compile_events = []
  jax.monitoring.register_event_duration_secs_listener(
      lambda event, seconds, **_: compile_events.append(seconds)
      if event.startswith("/jax/core/compile/") else None)
  t0 = time.perf_counter()
  result = jax.block_until_ready(extract_graph(presences, **learn_kwargs))
  first_s = time.perf_counter() - t0
  compile_s = sum(compile_events)
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    result = jax.block_until_ready(extract_graph(presences, **learn_kwargs))
    times.append(time.perf_counter() - t0)
  learned = levels_to_square([adj for adj, _ in result])
  metrics = edge_metrics(levels_to_square(blocks), learned)
  pairs = [{"pair": f"{l}->{l + 1}", **edge_metrics(block, adj), "auroc": edge_auroc(block, scores)}
           for l, (block, (adj, scores)) in enumerate(zip(blocks, result), start=1)]
  return {"preset": preset, "units": units, "levels": levels, "samples": samples,
          "device": jax.devices()[0].device_kind, "data_s": data_s, "compile_s": compile_s,
          "first_call_s": first_s, "steady_s": statistics.median(times),
          "true_edges": int(sum(b.sum() for b in blocks)), "learned_edges": int(learned.sum()),
          "f1": metrics["f1"], "precision": metrics["precision"], "recall": metrics["recall"],
          "pairs": pairs}


def main(argv):
  del argv
  row = run(_PRESET.value, _REPEATS.value, _RATE.value, _LEAK.value, _SEED.value,
            necessity=_NECESSITY.value, precision=_PRECISION.value)
  print(f"device: {row['device']} x{jax.device_count()}")
  print(cli.format_table([row], ["preset", "units", "levels", "samples", "compile_s",
                                 "first_call_s", "steady_s", "true_edges", "learned_edges",
                                 "precision", "recall", "f1"]))
  print(cli.format_table(row["pairs"], ["pair", "precision", "recall", "f1", "shd", "auroc"]))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, row)


if __name__ == "__main__":
  cli.run(main)
