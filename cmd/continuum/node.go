package main

import (
	"errors"
	"flag"
	"fmt"

	"github.com/continuum-mail/continuum/node"
)

// runNode: commands that act on a stopped node's data directory.
func runNode(args []string) error {
	if len(args) > 0 && args[0] == "promote" {
		return nodePromote(args[1:])
	}
	if len(args) == 0 || args[0] != "rebuild" {
		return errors.New("usage: continuum node rebuild --data DIR [--discard] | promote --data DIR")
	}
	fs := flag.NewFlagSet("node rebuild", flag.ContinueOnError)
	data := fs.String("data", "", "the stopped node's data directory")
	discard := fs.Bool("discard", false, "delete the damaged state instead of keeping it in DIR/damaged-TIME")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *data == "" || fs.NArg() > 0 {
		return errors.New("usage: continuum node rebuild --data DIR [--discard]")
	}
	moved, err := node.Rebuild(*data, *discard)
	if err != nil {
		return err
	}
	if moved != "" {
		fmt.Printf("moved the node's state into %s (remove it once the node is healthy again)\n", moved)
	} else {
		fmt.Println("removed the node's state")
	}
	fmt.Println("start the node again with the same --id and --join: the leader re-admits it and it copies the current state from a snapshot")
	return nil
}
