"""What the benchmarks compare against: greedy and beam search written by hand over our model's modules, and the
classic tutorial model. The only decoders besides `generate()`."""
