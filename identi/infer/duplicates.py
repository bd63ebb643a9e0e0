"""Near-duplicate atoms: which atoms of a dictionary point the same way as a more used one.

`identi.infer.minimal_atoms` keeps the atoms this suppression keeps;
`identi.infer.ancestors.merge_duplicates` merges the units it drops into a kept unit.
"""

import numpy as np


def distinct_atoms(dictionary: np.ndarray, energy: np.ndarray, max_cosine: float,
                   block: int = 2048) -> np.ndarray:
  """Bool (n,) mask of the atoms (n, d) kept by greedy suppression: atoms are visited by
  decreasing `energy` (ties to the lower index), and each is dropped if its cosine with an atom
  already kept exceeds `max_cosine`. Zero rows suppress nothing (callers drop them if they
  must). Cosines are computed `block` atoms at a time."""
  norms = np.linalg.norm(dictionary, axis=1, keepdims=True)
  unit = dictionary / np.maximum(norms, 1e-12)
  order = np.argsort(-energy, kind="stable")
  unit = unit[order]
  rank_pairs = []  # (lower rank j, higher rank i) with cosine > max_cosine and j < i.
  for start in range(0, unit.shape[0], block):
    cos = unit[start:start + block] @ unit.T
    rows, cols = np.nonzero(cos > max_cosine)
    rows = rows + start
    mask = cols < rows
    rank_pairs.append(np.stack([cols[mask], rows[mask]], axis=1))
  pairs = np.concatenate(rank_pairs)
  pairs = pairs[np.lexsort((pairs[:, 0], pairs[:, 1]))]
  kept = np.ones(unit.shape[0], bool)
  for j, i in pairs:  # Sorted by i: every j < i is final when i is visited.
    if kept[j]:
      kept[i] = False
  mask = np.zeros(unit.shape[0], bool)
  mask[order[kept]] = True
  return mask


__all__ = ["distinct_atoms"]
