"""ablate: FermiNet wave functions by variational Monte Carlo, and ablation sweeps over them."""

import time as _time

IMPORTED_AT = _time.time()   # start of `import ablate`: run start-up counts imports from here
