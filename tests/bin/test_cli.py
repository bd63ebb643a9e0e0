"""identi.bin.cli's table printer, shared by the binaries and benchmarks."""

from identi.bin import cli


def test_format_table_prints_floats_to_four_digits_and_missing_values_as_dashes():
  row = {"method": "topk", "mcc": 0.948512, "l0": None}
  text = cli.format_table([row], ["method", "mcc", "l0"])
  assert text.splitlines() == ["method     mcc  l0", "------  ------  --", "  topk  0.9485   -"]


def test_format_table_of_no_rows_is_the_header():
  assert cli.format_table([], ["features of", "n"]).splitlines() == ["features of  n",
                                                                     "-----------  -"]
