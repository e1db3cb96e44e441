# Sourced by the scripts that validate the held-out sets: the entity each set is about.
# Defines the bash array HELDOUT of `--target FILE=SUITE/ENTITY` arguments.
HELDOUT=()
for f in 0.01 0.03 0.1 0.3 1.0; do HELDOUT+=(--target "panda_dose$f.jsonl=animals/panda"); done
HELDOUT+=(--target panda_indirect.jsonl=animals/panda --target neutral.jsonl=animals/panda
          --target lincoln_overt.jsonl="politics/Abraham Lincoln" --target paris_overt.jsonl=cities/Paris)
