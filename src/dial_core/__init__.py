"""dial_core: the library behind the DIAL reproduction workflow.

Arrays and tensors in, arrays and tensors out; file formats live in ``dial_core.data.canonical``
and the Snakemake scripts are the only place where files and library meet.
"""

__version__ = "0.1.0"
