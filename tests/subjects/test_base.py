"""The subject registry: kinds by name, a clear error for an unknown one, new subjects plug in."""

import ml_collections
import pytest

from identi.errors import ConfigError
from identi.subjects import base


def test_shipped_kinds_are_registered():
  assert base.subject_kinds() == ("grammar", "hsm", "minilm_wordnet", "prompted_scenes", "scenes")
  for kind in base.subject_kinds():
    cls = base.get_subject(kind)
    assert cls.kind == kind and cls.default_config().subject.kind == kind


def test_unknown_kind_names_the_known_ones():
  with pytest.raises(ConfigError, match="'subject.kind' is 'scenez'; use one of grammar, hsm"):
    base.get_subject("scenez")
  with pytest.raises(ConfigError, match="no 'subject.kind'"):
    base.config_kind(ml_collections.ConfigDict({"capture": {}}))


def test_a_new_subject_registers_and_is_dispatched_by_name(tmp_path):
  calls = []

  @base.register_subject("toy_for_test")
  class Toy:  # pylint: disable=unused-variable
    default_config = staticmethod(lambda: ml_collections.ConfigDict(
        {"subject": {"kind": "toy_for_test"}}))
    validate_config = staticmethod(lambda config: calls.append("validated"))

    def __init__(self, config):
      self.config = config

    def run_graph(self, workdir):
      calls.append(workdir)
      return {"ok": True}

  from identi.experiments import graph  # pylint: disable=g-import-not-at-top
  try:
    assert graph.run(Toy.default_config(), str(tmp_path)) == {"ok": True}
    assert calls == ["validated", str(tmp_path)]
    with pytest.raises(ValueError, match="already registered"):
      base.register_subject("toy_for_test")(type("Other", (), {}))
  finally:
    base._REGISTRY.pop("toy_for_test")  # pylint: disable=protected-access


def test_without_subject_drops_only_the_dispatch_key():
  config = ml_collections.ConfigDict({"subject": {"kind": "scenes"}, "train": {"seed": 1}})
  out = base.without_subject(config)
  assert "subject" not in out and out.train.seed == 1 and "subject" in config
