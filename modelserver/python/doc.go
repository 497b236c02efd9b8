// Package python runs an Azure ML score.py, unmodified, behind modelship's
// model server: it implements modelserver.Runtime with a pool of long-lived
// Python worker processes.
//
// Each worker imports the entry script (the source dir and app root first on
// sys.path, the working directory set to the source dir), calls init() once
// and then run() once per request. Go owns the concurrency (one request per
// worker at a time; extra requests wait for a free worker), the scoring
// timeout (run() is interrupted in its worker by SIGALRM at the deadline, as
// in Azure's server; a worker that does not come back is killed and
// replaced) and restarts (a worker that dies is replaced; only its
// in-flight request fails).
//
// # Protocol
//
// Go and a worker talk over two pipes, the worker's fd 3 (requests) and fd 4
// (responses and data-collection records). Every frame is an 8-byte header
// (little-endian uint32 meta length, uint32 body length), a small JSON meta
// object and the raw body bytes, so request and response bodies are never
// re-encoded. The worker's stdout and stderr carry only the user's output;
// each line is prefixed with the request id (all zeros during init()) and
// copied to Config.Stdout.
//
// # Azure compatibility shims
//
// The binary embeds Python stand-ins for what score.py files import:
// azureml.core (Model.get_model_path with Azure's lookup rules, and
// Workspace/Run/Environment/webservice stubs that fail clearly only when a
// cloud call is made), inference_schema (input_schema/output_schema and the
// Standard/Numpy/Pandas parameter types), azureml.contrib.services
// (AMLRequest, rawhttp, AMLResponse, also under
// azureml_inference_server_http.api) and azureml.monitoring
// (ModelDataCollector, whose rows reach Config.Collect). They are extracted
// once to a cache directory keyed by their content hash and appended to the
// END of sys.path, so a real installed package always wins.
//
// # Choosing the Python interpreter (virtualenv, conda)
//
// The worker runs Config.Python; when empty, the MODELSHIP_PYTHON
// environment variable; else DefaultInterpreter: the first of python3 on
// PATH, /usr/bin/python3 and /usr/local/bin/python3 that can import numpy. To use your own environment,
// point it at that environment's interpreter, for example
//
//	MODELSHIP_PYTHON=$HOME/venvs/scoring/bin/python modelship serve-model ...
//	MODELSHIP_PYTHON=/opt/conda/envs/scoring/bin/python modelship serve-model ...
//
// (a virtualenv's or conda env's bin/python needs no activation: it finds its
// own site-packages). The environment needs whatever score.py imports
// (numpy, scikit-learn, ...); the Azure packages themselves are optional.
package python
