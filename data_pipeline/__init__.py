"""elocap data stage: PGN sources -> Elo-capped, encoded training shards."""
