"""The Learn tour (core layer): small, real experiments on one running VM that show what a VM is to the
host — a process, threads the scheduler runs, memory filled lazily, disks that are files, devices that
come and go — each measured before and after from the host view, and each undone when it ends.

The words around the numbers (Korean and English) belong to the web layer's message catalogs; this
package only runs experiments and returns what it measured.
"""
