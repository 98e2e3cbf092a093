"""Speed, memory, quality and device benchmarks of hf_simple_s2s, on one harness (`benchmarks/harness.py`); run as
`python -m benchmarks.<script>` from the repository root."""
