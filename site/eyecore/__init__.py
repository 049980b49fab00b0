"""Pure-Python per-frame eye-state logic shared by the page (Pyodide) and offline replay (CPython).

Standard library only: this package must import in a bare Pyodide.
"""
