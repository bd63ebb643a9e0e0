"""Command-line binaries: thin absl wrappers around one library function each."""
