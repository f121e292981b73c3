"""Offline stand-in for the get-pip script ansible-test downloads (its host is unreachable here).

Boots pip from the wheel bundled with ensurepip, then lets that pip install the requested
pip version (and setuptools/wheel unless told not to) from the configured package index.
"""
import argparse
import glob
import os
import sys

import ensurepip


def main():
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument('--no-setuptools', action='store_true')
    pre.add_argument('--no-wheel', action='store_true')
    opts, args = pre.parse_known_args(sys.argv[1:])
    if not opts.no_setuptools and not any(a.startswith('setuptools') for a in args):
        args.append('setuptools')
    if not opts.no_wheel and not any(a.startswith('wheel') for a in args):
        args.append('wheel')
    wheel = sorted(glob.glob(os.path.join(os.path.dirname(ensurepip.__file__), '_bundled', 'pip-*.whl')))[-1]
    sys.path.insert(0, wheel)
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel
    return pip_main(['install', '--upgrade', '--force-reinstall'] + args)


if __name__ == '__main__':
    sys.exit(main())
