module sops-deploy/tests/kvfileparse

go 1.24

require github.com/docker/cli v29.9.3+incompatible

require gotest.tools/v3 v3.5.2 // indirect
