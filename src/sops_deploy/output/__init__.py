"""Everything the user sees, and the redaction it passes last.

- `reporter`: the `Reporter` — stderr/stdout, step summary, outputs, annotations, every
  text through the redaction layer;
- `summary`: the results as terminal tables, step-summary Markdown and action outputs;
- `redact`: the masking policy and one matcher over every form a value takes;
- `workflow`: GitHub workflow-command escaping, neutralising outside text, size limits;
- `hints`: fixes in the words of the interface in use (`--flag` or `input:`).

It never decides an outcome: it shows the ones it is given.
"""
