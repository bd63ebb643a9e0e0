"""The SAE ecosystem's file formats: SAELens, Gemma Scope and sparsify, both directions.

`export_sae(workdir, 'saelens', out)` writes an identi SAE so that SAELens's
`SAE.load_from_disk(out)` gives the same codes; `import_sae('gemmascope', path, workdir)` makes
a workdir that identi's binaries (encode, evaluate, dashboard) accept. Each format is an
`SAEFormat` registered by name (`register_format`), reading to and writing from `SAEWeights`.
"""

from identi.formats import gemmascope, saelens, sparsify, workdir
from identi.formats.base import (KINDS, SAEFormat, SAEWeights, format_names, get_format,
                                 register_format)
from identi.formats.workdir import SIDECAR_FILE, export_sae, import_sae, weights_of

__all__ = [
    "KINDS", "SAEFormat", "SAEWeights", "SIDECAR_FILE", "export_sae", "format_names",
    "gemmascope", "get_format", "import_sae", "register_format", "saelens", "sparsify",
    "weights_of", "workdir",
]
