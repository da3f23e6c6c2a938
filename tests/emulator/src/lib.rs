//! placeholder: the emulator helper fills this in
