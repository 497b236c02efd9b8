CREATE TABLE compute_targets (
	workspace    TEXT NOT NULL REFERENCES workspaces(name),
	name         TEXT NOT NULL,
	body         TEXT NOT NULL,
	created_time TEXT NOT NULL,
	PRIMARY KEY (workspace, name)
);

CREATE TABLE services (
	workspace    TEXT NOT NULL REFERENCES workspaces(name),
	name         TEXT NOT NULL,
	body         TEXT NOT NULL,
	created_time TEXT NOT NULL,
	PRIMARY KEY (workspace, name)
);

-- Keys are sealed (encrypted) by the server's master key.
CREATE TABLE service_keys (
	workspace TEXT NOT NULL,
	name      TEXT NOT NULL,
	primary_sealed   TEXT NOT NULL,
	secondary_sealed TEXT NOT NULL,
	PRIMARY KEY (workspace, name)
);

CREATE TABLE operations (
	id           TEXT PRIMARY KEY,
	workspace    TEXT NOT NULL,
	target       TEXT NOT NULL,
	kind         TEXT NOT NULL,
	state        TEXT NOT NULL,
	error        TEXT NOT NULL DEFAULT '',
	created_time TEXT NOT NULL,
	end_time     TEXT NOT NULL DEFAULT ''
);
CREATE INDEX operations_target ON operations(workspace, target);

CREATE TABLE operation_logs (
	op_id   TEXT NOT NULL,
	seq     INTEGER NOT NULL,
	time    TEXT NOT NULL,
	message TEXT NOT NULL,
	PRIMARY KEY (op_id, seq)
);
