;; A library module, not a WASI command: it exports no `_start`. Refused at upload.
(module
  (func (export "handle") (param i32) (result i32) (local.get 0)))
