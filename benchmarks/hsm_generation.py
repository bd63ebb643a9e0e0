"""HSM generation throughput against SAELens: `python -m benchmarks.hsm_generation --preset=full`.

Times how many synthetic SAE training activations per second identi's HSM generator makes, and
SAELens's synthetic `SyntheticModel` on the same sizes in the same run (`--peer`, in its own torch
environment, `benchmarks/peers/saelens_generate.py`). Sizes are (level-1 features = SAELens
features, d_in, batch); `full` ends at SynthSAEBench-16k's 16,384 features in 768 dimensions with
its training batch of 1,024.

The identi world: levels (n, n/2, n/8), every whole has exactly 2 parents, no shared parts (with
5% sharing the selection components outgrow the exact sampler's limit of 16 from n = 1024 on),
SAELens's firing law (Zipf exponent 0.5, largest probability pi = 0.4) and eps = 0.3 (as in
`default_world`), which gives about as many active features per sample (L0, reported for both) as
SAELens's SynthSAEBench-16k settings. What each side does per sample:

- identi, `public`: `sample_hsm` then `superposition_view`, numpy out, as a user calls them. One
  float32 uniform per selection component and per level-1 feature; the component's level-1 pattern
  by inverse CDF from its exact 2^|C| table (selection is exact conditioning, no rejection);
  lognormal intensities by inverse CDF; levels 2 and 3 emerge: presence by gathering each whole's
  2 parents, intensity as the weighted geometric mean of the parents' (a dense (n_l, n_{l+1})
  matmul of log intensities); z = a * m on every level; all levels copied to the host. The view
  draws its mixing matrix A (d x n unit Gaussian columns) from its key on every call, copies z1 to
  the device, computes x = z1 A^T (plus sigma = 0 times a noise draw) and copies x back.
- identi, `device`: the same sampler and x = z1 A^T in one jitted call with A made once (as
  SAELens keeps its dictionary), every level and x left on the device; it reproduces the public
  x (`matches_public`).
- identi, `x_only`: the same jitted call returning only x, so XLA drops levels 2 and 3 (x depends
  on level 1 only; selection is already in the level-1 draw).
- SAELens: `SyntheticModel.sample(batch)` = `ActivationGenerator.sample` (one Bernoulli per
  feature, a magnitude per firing feature, the hierarchy modifier: children of inactive parents
  switched off, one random winner per mutually exclusive sibling group, children scaled by their
  parent, ReLU) then `FeatureDictionary` (x = acts @ vectors + bias, dense), on CPU with all
  cores; no orthogonalisation or correlation (see the peer script).

Equal-work caveats: SAELens's hierarchy gates top-down inside one set of features (parents are
themselves dictionary features; about 2/3 of the features are in trees), while the HSM conditions
the level-1 bits on bottom-up coherence and its 10n/8 higher concepts are extra latents that x does
not see; `public` and `device` still compute them, `x_only` does not. Both sides draw every
feature's bit densely and project densely.

Times: `first_s` is the first call (tracing and compilation included), `batch_ms` the median of
`--repeats` further calls, each ended by `block_until_ready`; the worlds' one-off construction
(`make_hsm`, SAELens's model) is listed separately. Results go to stdout and --output (JSON).
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags

from benchmarks.peers import saelens_env
from identi import io
from identi.bin import cli
from identi.generators import HSMConfig, make_hsm, sample_hsm, superposition_view
from identi.generators import hsm_sampler  # its chunk sampler, for the device paths

PRESETS = {
    # (level-1 features, d_in, batch)
    "smoke": [(256, 32, 128)],
    "quick": [(4096, 512, 1024)],
    "full": [(4096, 512, 1024), (16384, 768, 1024)],
}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER_SCRIPT = os.path.join(ROOT, "benchmarks", "peers", "saelens_generate.py")

_PRESET = flags.DEFINE_enum("preset", "quick", list(PRESETS), "Size grid.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls after the first (median reported).")
_OUTPUT = flags.DEFINE_string("output", "", "Optional JSON output path.")
_PEER = flags.DEFINE_enum("peer", "auto", ["auto", "saelens", "none"],
                          "Peer timed on every size; auto: saelens except for the smoke preset.")


def world(num_features: int) -> HSMConfig:
  """The benchmark's HSM world with `num_features` level-1 concepts (see the docstring)."""
  return HSMConfig(level_sizes=(num_features, num_features // 2, num_features // 8),
                   min_parents=2, max_parents=2, overlap=0.0, pi=0.4, zipf_exponent=0.5,
                   eps=0.3)


def _timed(fn, repeats: int):
  """`fn()`'s first result, the first call's seconds and the median of `repeats` more calls."""
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return out, first, statistics.median(times)


def time_identi(num_features: int, d_in: int, batch: int, repeats: int
                ) -> tuple[dict, list[dict]]:
  """The world's construction and one row per path (public, device, x_only)."""
  if batch > hsm_sampler.CHUNK:
    raise ValueError(f"batch {batch} is over sample_hsm's chunk of {hsm_sampler.CHUNK}")
  t0 = time.perf_counter()
  hsm = make_hsm(world(num_features))
  info = {"num_features": num_features, "levels": list(hsm.level_sizes),
          "components": len(hsm.components),
          "max_component": max(len(c) for c in hsm.components),
          "setup_s": time.perf_counter() - t0, "config": dataclasses.asdict(hsm.config)}
  k_latent, k_view = jax.random.split(jax.random.key(0))

  def public():
    out = sample_hsm(k_latent, hsm, batch)
    x, mixing = superposition_view(k_view, out["z"][0], d_in)
    return out, x, mixing

  (out, x, mixing), first, seconds = _timed(public, repeats)
  l0 = float(out["a"][0].sum(axis=1).mean())
  rows = [{"path": "public", "first_s": first, "seconds": seconds, "matches_public": True}]
  inputs = hsm_sampler.device_inputs(hsm)
  args = (jax.random.fold_in(k_latent, 0), inputs["tables"], inputs["graph"],
          jax.device_put(mixing))

  def generate(key, tables, graph, a):
    levels = hsm_sampler.sample_exact_chunk(key, *tables, *graph, num_samples=batch,
                                             magnitude=hsm.config.magnitude)
    return levels, jnp.matmul(levels[2][0], a.T, precision=jax.lax.Precision.HIGHEST)

  for path, fn in (("device", jax.jit(generate)),
                   ("x_only", jax.jit(lambda *a: generate(*a)[1]))):
    result, first, seconds = _timed(lambda fn=fn: fn(*args), repeats)
    x_dev = result[1] if path == "device" else result
    rows.append({"path": path, "first_s": first, "seconds": seconds,
                 "matches_public": bool(np.array_equal(np.asarray(x_dev), x))})
  for row in rows:
    row.update(num_features=num_features, d_in=d_in, batch=batch, l0=l0,
               batch_ms=1e3 * row["seconds"], samples_per_s=batch / row.pop("seconds"))
  return info, rows


def peer_command(python: str, num_features: int, d_in: int, batch: int, repeats: int,
                 threads: int) -> list[str]:
  """The command line that times SAELens's generator with the peer venv's python."""
  return [python, PEER_SCRIPT, f"--num_features={num_features}", f"--d_in={d_in}",
          f"--batch={batch}", f"--repeats={repeats}", f"--threads={threads}"]


def time_saelens(python: str, num_features: int, d_in: int, batch: int, repeats: int) -> dict:
  """SAELens's `SyntheticModel.sample` on the same sizes, all CPU threads."""
  cmd = peer_command(python, num_features, d_in, batch, repeats, os.cpu_count() or 1)
  return saelens_env.run_json(cmd)


def main(argv):
  del argv
  peer_python = saelens_env.peer_python(_PEER.value, _PRESET.value, ROOT)
  worlds, rows, peers = [], [], []
  for num_features, d_in, batch in PRESETS[_PRESET.value]:
    info, size_rows = time_identi(num_features, d_in, batch, _REPEATS.value)
    peer = None
    if peer_python is not None:
      try:
        peer = time_saelens(peer_python, num_features, d_in, batch, _REPEATS.value)
        peers.append(dict(peer, num_features=num_features, d_in=d_in, batch=batch))
      except (RuntimeError, ValueError, OSError) as e:
        saelens_env.warn(f"SAELens peer failed on {(num_features, d_in, batch)}: {e}")
    info["saelens_build_s"] = None if peer is None else peer["build_s"]
    worlds.append(info)
    for row in size_rows:
      row["saelens_samples_per_s"] = None if peer is None else peer["samples_per_s"]
      row["saelens_l0"] = None if peer is None else peer["l0"]
      row["ratio"] = None if peer is None else row["samples_per_s"] / peer["samples_per_s"]
    rows.extend(size_rows)
  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, "
        f"{os.cpu_count()} CPU threads")
  if peers:
    print(f"peer: SAELens {peers[0]['saelens_version']}, torch {peers[0]['torch_version']}, "
          f"{peers[0]['threads']} threads")
  print(cli.format_table(worlds, ["num_features", "levels", "components", "max_component",
                                  "setup_s", "saelens_build_s"]))
  print()
  print(cli.format_table(rows, ["num_features", "d_in", "batch", "path", "first_s", "batch_ms",
                                "samples_per_s", "l0", "saelens_samples_per_s", "saelens_l0",
                                "ratio", "matches_public"]))
  if _OUTPUT.value:
    io.write_json(_OUTPUT.value, {
        "device": jax.devices()[0].device_kind, "cpu_threads": os.cpu_count(),
        "repeats": _REPEATS.value, "worlds": worlds, "rows": rows, "saelens": peers})


if __name__ == "__main__":
  cli.run(main)
