"""The AI labeler of Lee et al. 2023, with no Django: prompts, answer tokens, scoring backends
(local transformers, OpenAI-compatible HTTP) and the labeling procedure (both orders, chain of
thought, self-consistency, direct 1-10 rating). The labeling app calls it; it imports no app."""
