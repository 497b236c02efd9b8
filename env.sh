export MODELSHIP_DATA_DIR=/tmp/audit-d/data
M=/tmp/audit-bin/modelship
