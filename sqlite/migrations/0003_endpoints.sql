CREATE TABLE endpoints (
	workspace    TEXT NOT NULL REFERENCES workspaces(name),
	name         TEXT NOT NULL,
	body         TEXT NOT NULL,
	created_time TEXT NOT NULL,
	PRIMARY KEY (workspace, name)
);
