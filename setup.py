"""Only the optional compiled loops (`optimizer/_kernels.c`); everything else is in pyproject.toml.

`optional=True`: when there is no C compiler or no Python headers the install goes on without
them and the pass runs its pure-Python code (the same decisions, `optimizer.kernels`).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "optimizer._kernels",
            ["optimizer/_kernels.c"],
            # No fused multiply-adds: numpy rounds each product and sum on its own.
            extra_compile_args=["-O2", "-ffp-contract=off", "-fno-fast-math"],
            optional=True,
        )
    ]
)
