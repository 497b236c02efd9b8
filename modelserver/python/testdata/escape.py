import os
import time


def init():
    pass


def run(data):
    # A program that leaves the worker's process group and outlives it.
    os.system("setsid sleep %s </dev/null >/dev/null 2>&1 &" % data)
    time.sleep(30)
