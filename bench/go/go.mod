module wxmedia-bench

go 1.22

require github.com/wxmedia/wxmedia/bindings/go v0.0.0

replace github.com/wxmedia/wxmedia/bindings/go => ../../bindings/go
