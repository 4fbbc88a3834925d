"""Pure folds of the read side, split by concept: the customer's view (balance and lots,
trust deposit, purchases), the standings evaluated at a moment (tier, segment, trust
flag, lifetime value), program-wide views (rules, NPS, liability), timeline effects and
the answers the API gives. No I/O here: the runner, the as-of reads and replays share it."""
