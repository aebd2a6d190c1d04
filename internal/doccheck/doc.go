// Package doccheck holds the tests that keep the user's documentation honest: the README stays a guide of at most
// 350 lines, and every relative link in it and in docs/ leads to a file and heading that exist.
package doccheck
