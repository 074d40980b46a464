"""The Optuna storage and what hpotui keeps in it: opening it (`backend`), waiting
out an outage (`outage`), checking the journal, the connection pool, the campaign queue,
trial records and recovery. Used by every process; never imports torch."""
