CREATE TABLE workspaces (
	name         TEXT PRIMARY KEY,
	description  TEXT NOT NULL DEFAULT '',
	created_time TEXT NOT NULL
);

-- One row per model name: the last version handed out, so versions never
-- repeat even after deletes.
CREATE TABLE model_names (
	workspace    TEXT NOT NULL REFERENCES workspaces(name),
	name         TEXT NOT NULL,
	last_version INTEGER NOT NULL,
	PRIMARY KEY (workspace, name)
);

CREATE TABLE model_versions (
	workspace         TEXT NOT NULL,
	name              TEXT NOT NULL,
	version           INTEGER NOT NULL,
	tags              TEXT NOT NULL DEFAULT '{}',
	properties        TEXT NOT NULL DEFAULT '{}',
	description       TEXT NOT NULL DEFAULT '',
	framework         TEXT NOT NULL DEFAULT '',
	framework_version TEXT NOT NULL DEFAULT '',
	asset_type        TEXT NOT NULL,
	file_name         TEXT NOT NULL DEFAULT '',
	file_count        INTEGER NOT NULL DEFAULT 0,
	size_bytes        INTEGER NOT NULL,
	sha256            TEXT NOT NULL,
	created_time      TEXT NOT NULL,
	PRIMARY KEY (workspace, name, version),
	FOREIGN KEY (workspace, name) REFERENCES model_names(workspace, name)
);
CREATE INDEX model_versions_sha256 ON model_versions(sha256);
