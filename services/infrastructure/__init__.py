"""What the write side, the read side and the audit share to reach the store's database and
the broker: the store URL and the event log's look-ups (`store`), the connections for the
tables beside the events (`sql`), the customers' keys (`keys`), kafka-python's settings
(`kafka_settings`). The library's internals stay in `services/ledger/adapters/eventstore/`;
`store` is the one module here that reaches into it (the recorder's factories and cursors).
"""
