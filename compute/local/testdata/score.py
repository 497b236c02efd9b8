import json
import os


def init():
    print("init: version", os.environ.get("TEST_VERSION", "1"))
    if os.environ.get("TEST_FAIL_INIT"):
        raise RuntimeError("init failed on purpose")
    mb = int(os.environ.get("TEST_ALLOC_MB", "0"))
    if mb:
        global hog
        hog = bytearray(mb << 20)
        for i in range(0, len(hog), 4096):
            hog[i] = 1


def run(raw):
    print("scoring", raw)
    return {"version": os.environ.get("TEST_VERSION", "1"), "pid": os.getpid()}
