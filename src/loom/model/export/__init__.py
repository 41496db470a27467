"""Export language models to other engines: run.py plans and runs `loom export`; gguf_file.py writes
GGUF (llama.cpp), ollama.py the Go template and Modelfile, hf.py a clean Hugging Face folder, and
verify.py reads an export back and compares it with its source. docs/export.md is the user's guide."""
