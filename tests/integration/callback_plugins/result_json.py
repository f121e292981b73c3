# Test-only stdout callback: prints each host's raw task result (diff included) as one JSON line.
from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: result_json
type: stdout
short_description: one JSON line per task result, for podnet's tests
description: Prints C(RESULT <host> <json>) for every task result, diff included.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "result_json"

    def _emit(self, result, **extra):
        data = dict(result._result, **extra)
        data.pop("invocation", None)
        self._display.display("RESULT %s %s" % (result._host.get_name(), json.dumps(data, default=str)))

    def v2_runner_on_ok(self, result):
        self._emit(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._emit(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._emit(result, failed=True, unreachable=True)
