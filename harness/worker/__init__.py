"""The contestant: a spawned child process that imports one untrusted module and runs what the judge sends."""
