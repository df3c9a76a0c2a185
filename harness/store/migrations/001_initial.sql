-- Store schema version 1: every ingested results document, normalized; history is never overwritten.
-- One row per ingested document. A document is identified by the sha256 of its bytes: ingesting it again
-- is a no-op.
CREATE TABLE runs (
    run_id           INTEGER PRIMARY KEY,
    document_sha256  TEXT NOT NULL UNIQUE,
    source_path      TEXT NOT NULL,          -- the file it was ingested from (for messages, not identity)
    ingested_at      TEXT NOT NULL,          -- ISO 8601 UTC
    schema_version   TEXT NOT NULL,          -- the document's results schema version
    harness_version  TEXT NOT NULL,
    git_commit       TEXT NOT NULL,
    git_dirty        INTEGER NOT NULL,
    torch_version    TEXT NOT NULL,
    python_version   TEXT NOT NULL,
    platform         TEXT,
    device           TEXT NOT NULL,          -- "cpu" or "cuda:<device name>"
    cpu_model        TEXT NOT NULL,
    cpu_count        INTEGER NOT NULL,
    threads          INTEGER NOT NULL,
    dtypes           TEXT NOT NULL,          -- JSON list
    seed             INTEGER NOT NULL,
    seed_policy      TEXT NOT NULL,
    date             TEXT NOT NULL,          -- when the run started (ISO 8601, from the document)
    machine          TEXT NOT NULL,          -- fingerprint: sha256 of cpu_model, cpu_count, platform, device
    config           TEXT NOT NULL           -- JSON object: gates, base_ref, base_commit, limits, modules_dir
);
CREATE INDEX runs_by_date ON runs (date);

-- One row per module (or mixed-precision policy) per run.
CREATE TABLE modules (
    run_id    INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    kind      TEXT,
    variants  TEXT NOT NULL,                 -- JSON list; the first is the one timed
    exact     INTEGER,                       -- 1 exact, 0 approximate, NULL unknown (failed to load)
    bound     TEXT,                          -- JSON object or NULL
    source    TEXT NOT NULL,
    verdict   TEXT NOT NULL,
    reason    TEXT NOT NULL,
    seconds   REAL NOT NULL,
    PRIMARY KEY (run_id, name, source)
);
CREATE INDEX modules_by_name ON modules (name);

-- One row per gate per module per run. summary: JSON object of gate-level figures (perf: "forward.ratio",
-- "forward.low", "forward.high", "forward_backward.*", "all.*", "threads", "threshold").
CREATE TABLE gates (
    run_id        INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    module        TEXT NOT NULL,
    source        TEXT NOT NULL,
    gate          TEXT NOT NULL,             -- unit | integration | perf
    verdict       TEXT NOT NULL,
    reason        TEXT NOT NULL,
    seconds       REAL NOT NULL,
    cases_total   INTEGER NOT NULL,
    cases_failed  INTEGER NOT NULL,
    summary       TEXT NOT NULL,
    PRIMARY KEY (run_id, module, source, gate)
);

-- One row per case. metrics: JSON object as in the document (non-finite numbers as "inf", "-inf", "nan").
CREATE TABLE cases (
    run_id    INTEGER NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    module    TEXT NOT NULL,
    source    TEXT NOT NULL,
    gate      TEXT NOT NULL,
    ordinal   INTEGER NOT NULL,              -- position in the gate's case list
    "case"    TEXT NOT NULL,
    dtype     TEXT NOT NULL,
    passed    INTEGER NOT NULL,
    failures  TEXT NOT NULL,                 -- JSON list of strings
    sizes     TEXT NOT NULL,                 -- JSON object
    metrics   TEXT NOT NULL,                 -- JSON object
    seconds   REAL NOT NULL,
    PRIMARY KEY (run_id, module, source, gate, ordinal)
);
