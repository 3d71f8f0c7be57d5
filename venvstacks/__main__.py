from venvstacks.cli import main

raise SystemExit(main())
