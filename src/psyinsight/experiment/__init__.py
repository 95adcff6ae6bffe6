"""The paper's experiment as one command: a base model against its task variants, trained and scored alike."""
