"""The counselor in front of a person: the model, the terminal chat, the safety layer."""
