"""The records every layer passes on (just above formats): the system model, triage
inputs, evidence, findings, kernel build defaults and the kernel table, log markers, the
crashed kernel's root-table candidates, the record file's schema. Sources return them,
analysis reasons over them, render shows them; nothing here reads a file."""
