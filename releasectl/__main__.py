from releasectl.cli import main

raise SystemExit(main())
