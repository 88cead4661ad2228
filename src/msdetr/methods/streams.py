"""The built-in stream names: the detector's output keys, the loss-weight groups and the metric
prefixes (`one_to_one.layer2.cls`). A method unit declares the streams it adds (`unit.StreamSpec`)."""

ONE_TO_ONE = "one_to_one"
ONE_TO_MANY = "one_to_many"
ENCODER = "encoder"
HYBRID = "hybrid"
GROUP = "group"
DENOISING = "denoising"
DAC = "dac"

BUILTIN_STREAMS = (ONE_TO_ONE, ONE_TO_MANY, ENCODER, HYBRID, GROUP, DENOISING, DAC)
