"""What the user asked for: the stack file parsed into immutable layer specs, and the layer graph."""
