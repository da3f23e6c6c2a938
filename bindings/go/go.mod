module github.com/wxmedia/wxmedia/bindings/go

go 1.22
