"""Trains an SAE: `python -m identi.bin.train --config=configs/sae_topk.py --workdir=DIR`.

Writes DIR/metrics.jsonl, DIR/checkpoints/ and DIR/final.json; a killed run restarted with the same
command resumes from its latest checkpoint. Multi-host: start one process per host with
--coordinator_address=HOST:PORT --num_processes=N --process_id=I. With
--config.sweep.init_seeds=0,1,2,3 it trains one SAE per seed in one pass (shared data)
and writes each to DIR/seed_<s>/; with --config.data.source=npy
--config.sweep.data_paths=ACTS/layer_1,ACTS/layer_2 one SAE per activation directory (e.g. per
layer, the same rows of each), written to DIR/layer_1/, DIR/layer_2/.
"""

from absl import flags
from ml_collections import config_flags

from identi.bin import cli
from identi.train import initialize_distributed, train_and_evaluate, train_sweep
from identi.train.sweep import is_sweep

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, e.g. configs/sae_topk.py:smoke.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Output directory (created if missing).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "Multi-host: HOST:PORT of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Multi-host: number of processes.")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "Multi-host: this process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  del argv
  initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  config = cli.load_config(_CONFIG)
  if is_sweep(config):
    finals = train_sweep(config, _WORKDIR.value)
  else:
    finals = [train_and_evaluate(config, _WORKDIR.value)]
  print(cli.format_table(finals, [k for k in ("member", "kind", "init_seed", "step", "fvu", "l0",
                                              "dead_fraction", "shrinkage", "cosine", "mcc")
                                  if k in finals[0]]))


if __name__ == "__main__":
  cli.run(main)
