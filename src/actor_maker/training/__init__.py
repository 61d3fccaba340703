"""Training an actor's LoRA from its dataset (issue 13): the trainer seam and the flow."""
