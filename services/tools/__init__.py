"""Tools around the service, not part of it: the traffic generator behind
`loyalty simulate` and the benchmarks (`simulation`, `cli`)."""
