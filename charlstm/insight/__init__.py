"""What a model learned."""
