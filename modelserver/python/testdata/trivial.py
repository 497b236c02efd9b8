import json
import os
import signal
import time


def init():
    print("init in", os.getcwd())


def run(data):
    if data == "boom":
        raise ValueError("boom requested")
    if data.startswith("stuck:"):
        # Code that does not return to the interpreter when interrupted.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(float(data[6:]))
        return "slept"
    if data.startswith("sleep:"):
        time.sleep(float(data[6:]))
        return "slept"
    if data == "die":
        os.kill(os.getpid(), 9)
    if data == "print":
        print("hello from run")
        return "printed"
    if data == "env":
        keys = ["AZUREML_MODEL_DIR", "AZUREML_ENTRY_SCRIPT", "AZUREML_SOURCE_DIRECTORY", "AML_APP_ROOT",
                "SERVICE_NAME", "SERVICE_VERSION", "WORKSPACE_NAME", "SCORING_TIMEOUT_MS"]
        return {k: os.environ.get(k) for k in keys}
    if data == "pid":
        return os.getpid()
    return data
