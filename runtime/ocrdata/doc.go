// Package ocrdata makes synthetic printed-line images for training and
// evaluating the OCR model: one line of text, rendered with a real font at
// its natural size, then degraded the way scans and screenshots are.
//
// The output is a raw crop (dark text on light paper unless the condition
// says otherwise) with random margins; runtime/ocrimage normalises it to the
// model's input height, this package does not.
//
// # Fonts
//
// Families lists the catalog: the Go fonts (embedded in
// golang.org/x/image/font/gofont, always present) and Debian font packages
// read from /usr/share/fonts. Four families of different kinds are held out
// for the validation split and never used in training:
//
//   - Caladea (serif, Cambria-metric; fonts-crosextra-caladea)
//   - Cantarell (humanist sans; fonts-cantarell)
//   - Courier Prime (typewriter slab mono; fonts-courier-prime)
//   - Charis SIL (Charter-like book serif; fonts-sil-charis)
//
// Every other family is in the training split. A missing font file is
// skipped; Missing names the Debian packages that would provide it, and Load
// fails, naming them, when a whole split has no faces.
//
// # Text
//
// Text draws printable-ASCII lines of 1–32 characters: windows of English
// from the installed fortune files (package fortunes), words from
// /usr/share/dict/words (package wamerican), and synthetic numbers, dates,
// prices, codes, e-mail addresses, URLs and punctuation runs. Without those
// files an embedded sample of plain English sentences stands in, so results
// depend on what is installed: an evaluation set written on one machine is
// only reproducible on a machine with the same fonts and text files.
// Non-ASCII input is folded to ASCII (curly quotes to straight, dashes to
// '-', accented Latin letters to their base letter); anything else is
// dropped (see ToASCII).
//
// # Conditions
//
// Each line is rendered under one named condition (Conditions lists them)
// whose intensity is drawn at random: clean, noise, blur, low_contrast,
// jpeg, lowres, rotate, inverted, and mixed (two or three of the others).
// Training samples clean about a quarter of the time and the others
// equally often.
//
// # Determinism
//
// All randomness comes from the *rand.Rand the caller passes; the same seed,
// fonts and text files give byte-identical images. Nothing in the package
// uses the global math/rand source.
package ocrdata
