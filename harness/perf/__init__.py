"""Performance measurement: the one timer, statistics, integrity facts, input pools, memory, roofline."""
