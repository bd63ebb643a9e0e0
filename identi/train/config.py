"""The training config schema: every field, its type and its default, and validation.

Experiment configs (`configs/*.py`) start from `default_config()` and change fields. Validation
compares a config against this schema, so that a typo in a config file or a value of the wrong
type fails at once with a one-line message that names the key, instead of being ignored.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

import ml_collections

from identi.errors import ConfigError
from identi.infer import ancestors

SAE_KINDS = ("relu", "topk", "batchtopk", "jumprelu", "matryoshka", "mp")
DATA_SOURCES = ("superposition", "npy")
#: Kinds whose sparsity is set by k (which must be <= d_sae).
K_SPARSE = ("topk", "batchtopk", "matryoshka", "mp")


def default_config() -> ml_collections.ConfigDict:
  """Returns the full schema with defaults: a TopK SAE on the demo's sparse superposition data."""
  c = ml_collections.ConfigDict()

  c.sae = ml_collections.ConfigDict()
  c.sae.kind = "topk"  # One of SAE_KINDS.
  c.sae.d_sae = 512  # Dictionary size (number of latents).
  c.sae.k = 6  # Active latents per sample (topk, batchtopk, matryoshka; pursuit steps for mp).
  c.sae.k_aux = 0  # AuxK latents; 0 means min(d_sae // 2, 512).
  c.sae.aux_alpha = 1.0 / 32.0  # Weight of the AuxK loss.
  c.sae.l1_coeff = 0.05  # ReLU-L1 sparsity coefficient.
  c.sae.l0_coeff = 1e-2  # JumpReLU L0 coefficient.
  c.sae.bandwidth = 0.1  # JumpReLU straight-through kernel bandwidth (scaled units).
  c.sae.init_threshold = 0.3  # JumpReLU initial threshold (scaled units).
  c.sae.threshold_momentum = 0.01  # (Matryoshka) BatchTopK inference-threshold estimate rate.
  c.sae.matryoshka_widths = ""  # Inner prefix widths, e.g. "128,256"; "" = d_sae/4, d_sae/2.
  c.sae.mp_tied = True  # MP-SAE: select atoms with the decoder (True) or the encoder (False).
  c.sae.normalize_decoder = True  # Unit-norm decoder rows, parallel gradient removed.
  c.sae.decoder = "auto"  # TopK decoder: 'auto', 'dense' or 'sparse' (k active rows gathered).
  c.sae.compute_dtype = "float32"  # Matmul operands: 'float32' or 'bfloat16' (params stay fp32).
  c.sae.init_sample_size = 4096  # Examples used for input scaling and the b_dec median.

  c.data = ml_collections.ConfigDict()
  c.data.source = "superposition"  # One of DATA_SOURCES.
  c.data.path = ""  # Shard directory or .npy file, for source='npy'.
  c.data.num_eval = 8192  # Held-out examples for evaluation.
  c.data.split_seed = 0  # Seed of the train/eval split.
  c.data.superposition = ml_collections.ConfigDict()
  c.data.superposition.num_samples = 131072
  c.data.superposition.num_features = 256
  c.data.superposition.d = 64
  c.data.superposition.active_per_sample = 4.0
  c.data.superposition.magnitude = "lognormal"
  c.data.superposition.noise_std = 0.0
  c.data.superposition.seed = 0

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 4000
  c.train.batch_size = 2048
  c.train.learning_rate = 3e-3
  c.train.warmup_steps = 100  # Linear learning-rate warm-up from 0.
  c.train.decay_fraction = 0.2  # Final fraction of steps with linear decay to 0.
  c.train.b1 = 0.9
  c.train.b2 = 0.999
  c.train.grad_clip = 1.0  # Global-norm clipping; 0 disables.
  c.train.sparsity_warmup_steps = 0  # Linear warm-up of l1_coeff / l0_coeff from 0.
  c.train.dead_window_tokens = 1_000_000  # A latent silent this many tokens counts as dead.
  c.train.seed = 0
  c.train.init_seed = -1  # Seed of the SAE's initialisation; -1: train.seed.
  c.train.log_every_steps = 500

  c.minimality = ml_collections.ConfigDict()
  c.minimality.enabled = False  # After training: minimal dictionary + refitted encoder.
  c.minimality.num_samples = 16384  # Training rows the stage reads.
  c.minimality.max_atoms = 0  # Most atoms per OMP code; 0 means min(2 k, d_sae).
  c.minimality.tol = 1e-3  # OMP's relative residual energy; also the stage's cost threshold.
  c.minimality.seed_rounds = 2  # Rounds of atoms seeded from residual groups.
  c.minimality.polish_rounds = 6  # Method-of-optimal-directions rounds at the end.
  # 'minimal': cone edges, composites and unneeded atoms dropped, seeds, polish; if more than
  # d_sae atoms remain (parts that almost never fire alone), the trained decoder instead:
  # refine_rounds rounds with duplicates replaced, the d_sae most used atoms kept, polish.
  # 'refined': that second route only.
  c.minimality.dictionary = "minimal"
  c.minimality.refine_rounds = 8
  # Shared ancestors (identi.infer.ancestors): the final units are the atoms' own remainders plus
  # the directions groups of atoms share (a hierarchy's parents, absent from a dictionary of tree
  # paths), so the final SAE may have more than d_sae latents. 'refined': where the stage took the
  # refined route (parts that never fire apart); 'always'; 'never'.
  c.minimality.ancestors = "refined"
  # How the shared directions are found (identi.infer.ancestors.GROUPINGS): 'mean_shift',
  # 'linkage' or 'union' (docs/decisions.md compares them).
  c.minimality.ancestor_grouping = "mean_shift"
  # What the grouping reads for each atom: 'atoms' (its direction) or 'profiles' (the mean of the
  # rows whose codes use it minus the mean of the others, identi.infer.ancestors.row_profiles).
  c.minimality.ancestor_input = "atoms"
  # How each atom's ancestors are chosen among the shared directions
  # (identi.infer.ancestors.SELECTIONS): 'cosine' (those of highest cosine with it) or 'pursuit'
  # (one at a time, each the one that best explains what the atom keeps after those before, while
  # that is above chance; then the ancestors of those chosen) or 'remainder' (the pursuit of the
  # atom's row profile continued on the atom itself; needs profiles and fitted codes).
  c.minimality.ancestor_selection = "cosine"
  # The codes over the units: 'spread' (each atom's code shared out over its units in fixed
  # proportions) or 'fitted' (each row then re-fitted on the units it uses by non-negative least
  # squares, identi.infer.ancestors.support_fit; with profiles, each atom's own remainder is then
  # taken from the atom itself, ancestor_map(..., exact=False)) or 'nested' (fitted, where an
  # atom whose narrower atoms fire inside its rows keeps its own unit off their rows,
  # identi.infer.ancestors.nested_supports, after unit_rounds rounds of the units' directions
  # fitted to those supports, identi.infer.refine_on_supports).
  c.minimality.ancestor_codes = "spread"
  c.minimality.unit_rounds = 3
  # Floors on the fitted units' codes, as fractions of each unit's 0.9 quantile of its positive
  # codes (identi.infer.ancestors.code_floors; 0: none). fit_floor: each of the unit_rounds rounds
  # ('nested') drops the codes below it before it fits the directions. code_floor: the final codes
  # ('fitted' or 'nested') drop the codes below it and are fitted again; the floors are saved with
  # the stage, so encode --mode=minimal drops the same codes.
  c.minimality.fit_floor = 0.0
  c.minimality.code_floor = 0.0
  # Where the atoms get shared ancestors: each row's OMP codes over the atoms first lose, one at a
  # time and cheapest first, the atoms whose removal costs the row less than tol of its energy
  # (identi.infer.minimality.prune_codes); the map, its supports and encode --mode=minimal read
  # those codes.
  c.minimality.prune_codes = False
  # With shared ancestors and fitted codes: units whose directions lie within the refinement's
  # duplicate cosine (identi.infer.minimality.DUPLICATE_COSINE) of a more used unit merge into it
  # (identi.infer.ancestors.merge_duplicates); 'nested' then fits the units' directions again for
  # unit_rounds rounds.
  c.minimality.merge_units = False
  # The SAE trains with expansion x d_sae latents; the stage keeps at most d_sae atoms, so the
  # final dictionary has d_sae latents whatever the count of concepts (1: train at d_sae).
  c.minimality.expansion = 1

  c.sweep = ml_collections.ConfigDict()
  c.sweep.init_seeds = ""  # "0,1,2,3": train one SAE per init seed in one step, sharing the data.
  # "DIR_A,DIR_B": one SAE per activation directory (e.g. per layer) in one step; every step reads
  # the same rows of each directory (data.source 'npy', data.path left empty).
  c.sweep.data_paths = ""
  # How one step runs the SAEs: 'vmap' (vectorised over the SAE axis), 'loop' (one after another
  # inside the one jitted step, `lax.map`), 'auto' (loop on CPU, where a vectorised step is no
  # faster, vmap on accelerators).
  c.sweep.batching = "auto"

  c.mesh = ml_collections.ConfigDict()
  c.mesh.model = 1  # Devices per latent shard: W_enc, b_enc, W_dec and Adam split over latents.

  c.checkpoint = ml_collections.ConfigDict()
  c.checkpoint.every_steps = 1000
  c.checkpoint.max_to_keep = 3
  c.checkpoint.async_save = True

  c.eval = ml_collections.ConfigDict()
  c.eval.batch_size = 4096
  c.eval.mcc_method = "pearson"  # 'pearson' or 'spearman', when true latents are known.
  return c


_CHOICES = {
    "sae.kind": SAE_KINDS,
    "sae.decoder": ("auto", "dense", "sparse"),
    "sae.compute_dtype": ("float32", "bfloat16"),
    "data.source": DATA_SOURCES,
    "data.superposition.magnitude": ("lognormal", "uniform"),
    "eval.mcc_method": ("pearson", "spearman"),
    "sweep.batching": ("auto", "vmap", "loop"),
    "minimality.dictionary": ("minimal", "refined"),
    "minimality.ancestors": ("never", "refined", "always"),
    "minimality.ancestor_grouping": tuple(ancestors.GROUPINGS),
    "minimality.ancestor_input": ("atoms", "profiles"),
    "minimality.ancestor_selection": ancestors.SELECTIONS,
    "minimality.ancestor_codes": ("spread", "fitted", "nested"),
}
_POSITIVE = (
    "sae.d_sae", "sae.k", "sae.bandwidth", "sae.init_threshold", "sae.init_sample_size",
    "train.num_steps", "train.batch_size", "train.learning_rate", "train.log_every_steps",
    "train.dead_window_tokens", "mesh.model", "checkpoint.every_steps", "checkpoint.max_to_keep",
    "eval.batch_size", "data.num_eval", "minimality.num_samples", "minimality.expansion",
    "minimality.refine_rounds", "minimality.unit_rounds",
)
_NON_NEGATIVE = (
    "sae.k_aux", "sae.aux_alpha", "sae.l1_coeff", "sae.l0_coeff", "train.warmup_steps",
    "train.grad_clip", "train.sparsity_warmup_steps", "minimality.max_atoms",
    "minimality.seed_rounds", "minimality.polish_rounds",
)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
  out = {}
  for key, value in d.items():
    name = f"{prefix}{key}"
    if isinstance(value, (ml_collections.ConfigDict, dict)):
      out.update(_flatten(value, name + "."))
    else:
      out[name] = value
  return out


def _type_ok(value: Any, expected: Any) -> bool:
  if isinstance(expected, bool) or isinstance(value, bool):
    return isinstance(value, bool) and isinstance(expected, bool)
  if isinstance(expected, float):
    return isinstance(value, (int, float))
  return isinstance(value, type(expected))


def check_keys(config: ml_collections.ConfigDict, schema: ml_collections.ConfigDict,
               skip: tuple[str, ...] = ()) -> dict[str, Any]:
  """Checks that `config` has exactly the keys of `schema`, with the schema's value types.

  Raises ConfigError naming the first unknown, missing or mistyped key; keys under a prefix in
  `skip` are not checked. Returns the flattened config ({'section.key': value}).
  """
  schema_flat = {k: v for k, v in _flatten(schema).items() if not k.startswith(skip)}
  flat = _flatten(config)
  for name, value in flat.items():
    if name.startswith(skip):
      continue
    if name not in schema_flat:
      section = name.rsplit(".", 1)[0] if "." in name else ""
      known = sorted(k.rsplit(".", 1)[-1] for k in schema_flat
                     if (k.rsplit(".", 1)[0] if "." in k else "") == section)
      raise ConfigError(
          f"unknown config key '{name}'; known keys here: {', '.join(known)} "
          "(fix the spelling in the config file or the --config override)")
    expected = schema_flat[name]
    if not _type_ok(value, expected):
      raise ConfigError(
          f"config key '{name}' has type {type(value).__name__} ({value!r}); "
          f"expected {type(expected).__name__} like the default {expected!r}")
  for name in schema_flat:
    if name not in flat:
      raise ConfigError(
          f"config key '{name}' is missing; start configs from the schema's defaults "
          "(identi.train.default_config() or identi.experiments.identify.default_config())")
  return flat


def validate_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError naming the key for unknown keys, wrong types and impossible values."""
  flat = check_keys(config, default_config())
  for name, choices in _CHOICES.items():
    if flat[name] not in choices:
      raise ConfigError(
          f"config key '{name}' is {flat[name]!r}; choose one of {', '.join(choices)}")
  for name in _POSITIVE:
    if not flat[name] > 0:
      raise ConfigError(f"config key '{name}' is {flat[name]!r}; it must be > 0")
  for name in _NON_NEGATIVE:
    if not flat[name] >= 0:
      raise ConfigError(f"config key '{name}' is {flat[name]!r}; it must be >= 0")
  if not 0 <= flat["train.decay_fraction"] <= 1:
    raise ConfigError(
        f"config key 'train.decay_fraction' is {flat['train.decay_fraction']!r}; "
        "it must lie in [0, 1]")
  if flat["sae.kind"] in K_SPARSE and flat["sae.k"] > flat["sae.d_sae"]:
    raise ConfigError(
        f"config key 'sae.k' is {flat['sae.k']} but sae.d_sae is {flat['sae.d_sae']}; "
        "k must be <= d_sae")
  if flat["mesh.model"] > 1 and flat["sae.kind"] == "topk" and flat["sae.decoder"] == "sparse":
    raise ConfigError(
        "config key 'sae.decoder' is 'sparse' but mesh.model > 1: the sparse decoder gathers "
        "rows of the whole dictionary; use 'auto' or 'dense' (latent-sharded runs decode densely)")
  if flat["sae.d_sae"] % flat["mesh.model"]:
    raise ConfigError(
        f"config key 'mesh.model' is {flat['mesh.model']} but sae.d_sae ({flat['sae.d_sae']}) is "
        "not divisible by it; the latents are split evenly over the model axis")
  if flat["train.init_seed"] < -1:
    raise ConfigError(f"config key 'train.init_seed' is {flat['train.init_seed']}; use -1 "
                      "(train.seed) or a seed >= 0")
  for name in ("minimality.fit_floor", "minimality.code_floor"):
    if not 0 <= flat[name] < 1:
      raise ConfigError(f"config key '{name}' is {flat[name]!r}; it must lie in [0, 1), a "
                        "fraction of each unit's typical code, e.g. 0.25 (0: no floor)")
  if flat["minimality.fit_floor"] > 0 and flat["minimality.ancestor_codes"] != "nested":
    raise ConfigError(f"config key 'minimality.fit_floor' is {flat['minimality.fit_floor']!r} "
                      f"but minimality.ancestor_codes is {flat['minimality.ancestor_codes']!r}; "
                      "only 'nested' fits the units' directions: set it to 'nested' or the floor "
                      "to 0")
  if flat["minimality.code_floor"] > 0 and flat["minimality.ancestor_codes"] == "spread":
    raise ConfigError(f"config key 'minimality.code_floor' is {flat['minimality.code_floor']!r} "
                      "but minimality.ancestor_codes is 'spread', whose codes are not fitted: "
                      "set it to 'fitted' or 'nested', or the floor to 0")
  if flat["minimality.prune_codes"] and flat["minimality.ancestors"] == "never":
    raise ConfigError("config key 'minimality.prune_codes' is True but minimality.ancestors is "
                      "'never'; the pruned codes are what the ancestor map reads: set ancestors "
                      "to 'refined' or 'always', or prune_codes to False")
  if flat["minimality.ancestor_selection"] == "remainder" and (
      flat["minimality.ancestor_input"] != "profiles"
      or flat["minimality.ancestor_codes"] == "spread"):
    raise ConfigError("config key 'minimality.ancestor_selection' is 'remainder', which continues "
                      "each row profile's pursuit on its atom and needs fitted codes: set "
                      "minimality.ancestor_input to 'profiles' and ancestor_codes to 'fitted' or "
                      "'nested', or the selection to 'pursuit'")
  if flat["minimality.merge_units"] and (flat["minimality.ancestors"] == "never"
                                         or flat["minimality.ancestor_codes"] == "spread"):
    raise ConfigError("config key 'minimality.merge_units' is True, which merges the shared "
                      "ancestors' duplicate units and re-fits their codes: set "
                      "minimality.ancestors to 'refined' or 'always' and ancestor_codes to "
                      "'fitted' or 'nested', or merge_units to False")
  if not 0 < flat["minimality.tol"] < 1:
    raise ConfigError(f"config key 'minimality.tol' is {flat['minimality.tol']!r}; it must lie "
                      "in (0, 1), e.g. 1e-3")
  if flat["minimality.enabled"] and flat["sae.kind"] not in ("topk", "batchtopk", "matryoshka"):
    raise ConfigError(f"config key 'minimality.enabled' is True but sae.kind is "
                      f"{flat['sae.kind']!r}; the minimality stage fits a k-sparse encoder: use "
                      "sae.kind topk, batchtopk or matryoshka")
  if flat["minimality.expansion"] > 1 and not flat["minimality.enabled"]:
    raise ConfigError(f"config key 'minimality.expansion' is {flat['minimality.expansion']} but "
                      "minimality.enabled is False; only the minimality stage shrinks a wider "
                      "SAE to d_sae latents: enable it or set minimality.expansion=1")
  seeds = sweep_seeds(flat["sweep.init_seeds"])
  paths = sweep_paths(flat["sweep.data_paths"])
  if seeds and paths:
    raise ConfigError("config keys 'sweep.init_seeds' and 'sweep.data_paths' are both set; a "
                      "sweep varies one of them: set the other to ''")
  for key in ("sweep.init_seeds", "sweep.data_paths"):
    if flat[key] and flat["mesh.model"] > 1:
      raise ConfigError(f"config key '{key}' is set and mesh.model > 1; a sweep trains "
                        "data-parallel: set mesh.model=1 or train the SAEs one by one")
  if paths and (flat["data.source"] != "npy" or flat["data.path"]):
    raise ConfigError("config key 'sweep.data_paths' is set; its directories are the data: set "
                      "data.source='npy' and leave data.path empty")
  if flat["data.source"] == "npy" and not flat["data.path"] and not paths:
    raise ConfigError(
        "config key 'data.path' is empty but data.source is 'npy'; "
        "pass --config.data.path=SHARD_DIR")


def sweep_seeds(text: str) -> tuple[int, ...]:
  """The init seeds of config key 'sweep.init_seeds' ("0,1,2"; "" = no sweep)."""
  try:
    seeds = tuple(int(v) for v in text.split(",") if v.strip())
  except ValueError as e:
    raise ConfigError(f"config key 'sweep.init_seeds' is {text!r}; give comma-separated seeds "
                      "such as '0,1,2,3' (or '' for one SAE)") from e
  if len(set(seeds)) != len(seeds) or any(v < 0 for v in seeds):
    raise ConfigError(f"config key 'sweep.init_seeds' is {text!r}; the seeds must be distinct "
                      "and >= 0")
  return seeds


def sweep_paths(text: str) -> tuple[str, ...]:
  """The directories of config key 'sweep.data_paths' ("a/layer_1,a/layer_2"; "" = no sweep).
  Each SAE's workdir is named after its directory, so the last path components must differ."""
  paths = tuple(p.strip() for p in text.split(",") if p.strip())
  names = [os.path.basename(os.path.normpath(p)) for p in paths]
  if len(set(names)) != len(names) or len(paths) == 1:
    raise ConfigError(f"config key 'sweep.data_paths' is {text!r}; give two or more "
                      "comma-separated directories whose last components differ (each SAE's "
                      "workdir is named after it)")
  return paths


def init_seed(config: ml_collections.ConfigDict) -> int:
  """The seed of the SAE's initialisation: train.init_seed, or train.seed when it is -1."""
  return config.train.seed if config.train.init_seed < 0 else config.train.init_seed


def matryoshka_widths(text: str) -> tuple[int, ...]:
  """The inner prefix widths of config key 'sae.matryoshka_widths' ("128,256"; "" = default)."""
  try:
    return tuple(int(w) for w in text.split(",") if w.strip())
  except ValueError as e:
    raise ConfigError(f"config key 'sae.matryoshka_widths' is {text!r}; give comma-separated "
                      "integers such as '128,256' (or '' for d_sae/4, d_sae/2)") from e


def sae_hparams(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The keyword arguments of `identi.sae.make_sae` for the configured kind."""
  s = config.sae
  hp: dict[str, Any] = {"compute_dtype": s.compute_dtype}
  if s.kind in ("topk", "batchtopk", "matryoshka"):
    hp.update(k=s.k, aux_alpha=s.aux_alpha, k_aux=s.k_aux or None)
    if s.kind in ("batchtopk", "matryoshka"):
      hp["threshold_momentum"] = s.threshold_momentum
    else:  # A latent-sharded run decodes densely: sharded rows, one all-reduce.
      hp["decoder"] = "dense" if config.mesh.model > 1 else s.decoder
    if s.kind == "matryoshka":
      hp["widths"] = matryoshka_widths(s.matryoshka_widths)
  elif s.kind == "mp":
    hp.update(k=s.k, tied=s.mp_tied)
  elif s.kind == "jumprelu":
    hp.update(bandwidth=s.bandwidth, init_threshold=s.init_threshold)
  return hp


def train_width(config: ml_collections.ConfigDict) -> int:
  """The number of latents the SAE trains with: sae.d_sae, times minimality.expansion when the
  minimality stage (which keeps at most sae.d_sae atoms) follows."""
  expansion = config.minimality.expansion if config.minimality.enabled else 1
  return int(config.sae.d_sae * expansion)


def sparsity_coeff(config: ml_collections.ConfigDict) -> float:
  """The configured coefficient of the sparsity penalty (0 for TopK-style SAEs)."""
  return {"relu": config.sae.l1_coeff, "jumprelu": config.sae.l0_coeff}.get(config.sae.kind, 0.0)


def check_variant(arg: str | None) -> bool:
  """True for the ':smoke' variant, False for none; ConfigError for anything else."""
  if arg and arg != "smoke":
    raise ConfigError(f"unknown config variant ':{arg}'; use no variant or ':smoke'")
  return bool(arg)


def shrink_training(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Smoke sizes (seconds on CPU) of the sae, train, checkpoint and eval sections."""
  config.sae.d_sae = 64
  config.sae.k = min(config.sae.k, 4)
  config.sae.init_sample_size = 512
  config.train.num_steps = 60
  config.train.batch_size = 64
  config.train.warmup_steps = 10
  config.train.sparsity_warmup_steps = min(config.train.sparsity_warmup_steps, 20)
  config.train.log_every_steps = 20
  config.train.dead_window_tokens = 2048
  config.checkpoint.every_steps = 20
  config.eval.batch_size = 256
  if "minimality" in config:  # Experiment configs (identify) have no minimality section.
    config.minimality.num_samples = 512
    config.minimality.polish_rounds = 2
  return config


def config_variant(config: ml_collections.ConfigDict,
                   arg: str | None) -> ml_collections.ConfigDict:
  """Applies a `:variant` of a config file: '' (full run) or 'smoke' (seconds on CPU, for tests)."""
  if not check_variant(arg):
    return config
  shrink_training(config)
  config.data.num_eval = 512
  s = config.data.superposition
  s.num_samples, s.num_features, s.d, s.active_per_sample = 4096, 32, 16, 3.0
  return config


def load_config(spec: str) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py[:variant]` the way `--config=` does (for scripts and tests)."""
  path, _, arg = spec.partition(":")
  if not os.path.isfile(path):
    raise ConfigError(f"config file {path} does not exist; pass configs/NAME.py[:VARIANT]")
  module_spec = importlib.util.spec_from_file_location("identi_config", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)
